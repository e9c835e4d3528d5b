def main(args):
    # An .http answer: the status, headers and body the caller asks for.
    status = int(args.get("status") or 201)
    return {
        "statusCode": status,
        "headers": {"X-Example": "yes", "Location": "/things/1"},
        "body": {"created": status == 201, "status": status},
    }
