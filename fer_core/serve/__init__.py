"""The HTTP service (`fer-core serve`): FastAPI on uvicorn over the `Recognizer` facade.

The only wing of fer_core that imports FastAPI; `app.create_app` builds the service,
`limits` holds its bounds and the body-size guard.
"""
