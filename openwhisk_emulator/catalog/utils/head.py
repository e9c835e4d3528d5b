def main(args):
    """The first ``num`` (default 1) of ``lines``."""
    lines = args.get("lines") or []
    if not isinstance(lines, list):
        return {"error": "lines must be an array"}
    try:
        num = int(args.get("num", 1))
    except (TypeError, ValueError):
        return {"error": "num must be a whole number"}
    return {"lines": lines[:max(num, 0)]}
