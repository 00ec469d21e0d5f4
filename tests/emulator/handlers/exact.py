"""Reports exactly what the handler received, in a form any encoder can send back."""

calls = 0


def describe(event, context):
    global calls
    calls += 1
    depth = 0
    node = event
    while isinstance(node, list) and len(node) == 1:
        depth += 1
        node = node[0]
    return {"calls": calls, "depth": depth, "innermost": ascii(node)}


def deep_failure(event, context):
    """Raises from deep recursion: a stack trace whose X-Ray cause is tens of KiB."""

    def down(n):
        if n:
            down(n - 1)
        raise ValueError("y" * 1000)

    down(event["depth"])
