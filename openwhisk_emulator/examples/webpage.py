def main(args):
    return {"statusCode": 200, "headers": {"content-type": "text/html"}, "body": "<h1>Hello</h1>"}
