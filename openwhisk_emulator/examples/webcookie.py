def main(args):
    # Sets a cookie and says which one (if any) the request carried.
    value = str(args.get("value") or "first")
    return {
        "statusCode": 200,
        "headers": {"Set-Cookie": "session=" + value + "; Path=/"},
        "body": {"set": value, "received": args.get("__ow_headers", {}).get("cookie")},
    }
