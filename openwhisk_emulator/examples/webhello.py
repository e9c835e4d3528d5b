def main(args):
    return {"message": "Hello " + (args.get("name") or "World")}
