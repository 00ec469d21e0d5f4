"""Developer tooling that builds deployment artefacts (`lambda-runtime package`, safe zips).

Never shipped to Lambda: the runtime layer and the container images leave this package out.
"""
