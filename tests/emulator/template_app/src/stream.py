def handler(event, context):
    # A plain generator: the streaming wiring is the emulator's stream endpoint's job.
    for part in ("one", "two", "three"):
        yield part.encode()
