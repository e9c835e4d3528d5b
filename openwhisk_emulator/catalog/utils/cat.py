def main(args):
    """Concatenates ``lines`` into one ``payload`` string, one line each."""
    lines = args.get("lines") or []
    if not isinstance(lines, list):
        return {"error": "lines must be an array"}
    return {"lines": lines, "payload": "\n".join(str(line) for line in lines)}
