def main(args):
    """How many words ``payload`` has."""
    payload = args.get("payload", "")
    if not isinstance(payload, str):
        return {"error": "payload must be a string"}
    count = len(payload.split())
    print(f"The message '{payload}' has {count} words")
    return {"count": count}
