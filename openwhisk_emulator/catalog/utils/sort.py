def main(args):
    """Sorts ``lines``; answers them with their count."""
    lines = args.get("lines") or []
    if not isinstance(lines, list):
        return {"error": "lines must be an array"}
    ordered = sorted(lines, key=str)
    return {"length": len(ordered), "lines": ordered}
