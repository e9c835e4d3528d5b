def main(params):
    place = params["args"] if params.get("args") else params.get("place", "nowhere")
    return {"message": "Weather for " + place + ": sunny"}
