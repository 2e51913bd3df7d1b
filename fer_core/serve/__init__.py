"""The HTTP service (`fer-core serve`): FastAPI on uvicorn over the `Recognizer` facade.

The only wing of fer_core that imports FastAPI; `app.create_app` builds the service from `routes`
(the endpoints, as routers), `dependencies` (the key, the queue, the recognizers, from `app.state`),
`schemas` (requests and answers as pydantic models) and `limits` (its bounds and the body-size guard).
"""
