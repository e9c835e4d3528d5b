def main(args):
    # Answers with exactly what OpenWhisk passed it: the request's headers and method.
    return {"body": {"headers": args.get("__ow_headers", {}), "method": args.get("__ow_method")}}
