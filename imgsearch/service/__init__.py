"""The HTTP service (`imgsearch serve`): a FastAPI app over the library object."""
