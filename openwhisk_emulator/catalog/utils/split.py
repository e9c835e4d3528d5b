def main(args):
    """Splits ``payload`` into ``lines`` at ``separator`` (default: line breaks)."""
    payload = args.get("payload", "")
    if not isinstance(payload, str):
        return {"error": "payload must be a string"}
    separator = args.get("separator")
    lines = payload.split(separator) if separator else payload.splitlines()
    return {"lines": lines}
