def main(args):
    return {"error": "something went wrong"}
