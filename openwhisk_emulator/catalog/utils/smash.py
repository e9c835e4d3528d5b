def main(args):
    """Nests every other parameter under the one named by ``fieldName``."""
    field = args.get("fieldName")
    if not isinstance(field, str) or not field:
        return {"error": "fieldName is required"}
    return {field: {k: v for k, v in args.items() if k != "fieldName"}}
