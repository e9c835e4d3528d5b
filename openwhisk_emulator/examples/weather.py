def main(params):
    # A router #command passes its words as a list in `args` (and the raw text in `args_text`).
    args = params.get("args")
    if isinstance(args, list):
        args = " ".join(args)
    place = args or params.get("place", "nowhere")
    return {"message": "Weather for " + str(place) + ": sunny"}
