"""The HTTP service (`imgsearch serve`): a FastAPI app over the library object, with the thumbnails
and kept uploads that only it serves."""
