import time


def main(args):
    # `ms` when invoked directly; a router #command passes its words in `args` instead.
    words = args.get("args") or []
    first = words[0] if isinstance(words, list) and words else ""
    ms = int(args.get("ms", first if str(first).isdigit() else 1000))
    time.sleep(ms / 1000.0)
    return {"slept_ms": ms}
