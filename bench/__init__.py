"""`python -m bench`: side-by-side benchmarks of this project against AWS's tools.

See README.md in this folder.
"""
