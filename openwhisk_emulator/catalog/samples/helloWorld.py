def main(args):
    """Logs a greeting for ``payload`` and answers it."""
    message = f"hello {args.get('payload', 'world')}!"
    print(message)
    return {"payload": message}
