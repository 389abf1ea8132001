"""The collection's images: pages with folder and date filters, the folder list, one image's
record, its thumbnail and its file (only while it is the indexed file), and deleting one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.responses import FileResponse, StreamingResponse

from imgsearch.browse import MAX_PAGE, ImageInfo
from imgsearch.errors import ImageDecodeError
from imgsearch.library import Index
from imgsearch.service.common import ERRORS, JPEG, WRITE_ERRORS, IndexDep, binary, require_token
from imgsearch.service.schemas import Folder, FolderList, Image, ImagePage, Problem

router = APIRouter()


def as_image(info: ImageInfo) -> Image:
    return Image(**info.to_json(), thumb_url=f"/api/images/{info.id}/thumb")


def found(index: Index, image_id: int) -> ImageInfo:
    """The indexed image with this id, else 404."""
    info = index.image(image_id) if 1 <= image_id < 2**63 else None
    if info is None:
        raise HTTPException(404, f"No indexed image has id {image_id}.")
    return info


@router.get("/api/images", response_model=ImagePage, responses=ERRORS)
def list_images(
    index: IndexDep,
    folder: Annotated[
        str | None, Query(max_length=4096, description="absolute, or relative to the collection's root")
    ] = None,
    since: float | None = None,
    until: float | None = None,
    sort: Annotated[str, Query(pattern="^(path|date)$")] = "path",
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    cursor: Annotated[str | None, Query(max_length=8192)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> ImagePage:
    """A page of the collection; `next_cursor` asks for the next one; the first page says how
    many images match (`total`). An unknown folder is a 404."""
    page = index.images(
        folder=folder,
        since=since,
        until=until,
        sort=sort,
        descending=order == "desc",
        after=cursor,
        limit=limit,
    )
    return ImagePage(
        images=[as_image(i) for i in page.images], next_cursor=page.next_cursor, total=page.total
    )


@router.get("/api/folders", response_model=FolderList, responses={503: {"model": Problem}})
def list_folders(index: IndexDep) -> FolderList:
    """Every folder holding indexed files, with how many images are in it and below it; names
    are relative to the collection's root folder (the `folder` filters take either)."""
    found_folders = index.folders()
    root = found_folders[0].path if found_folders else None
    return FolderList(
        root=root,
        folders=[Folder(path=f.path, name=f.name, images=f.images, depth=f.depth) for f in found_folders],
    )


@router.get("/api/images/{image_id}", response_model=Image, responses=ERRORS)
def get_image(index: IndexDep, image_id: int) -> Image:
    return as_image(found(index, image_id))


@router.get("/api/images/{image_id}/thumb", response_class=FileResponse, responses={**ERRORS, **JPEG})
def thumbnail(
    index: IndexDep, image_id: int, size: Annotated[int, Query(ge=16, le=1024)] = 256
) -> FileResponse:
    from imgsearch.service.thumbnails import thumbnail as make

    info = found(index, image_id)
    try:
        # the root is looked up only when the thumbnail has to be made from the file
        path = make(
            info.location,
            info.sha256,
            info.byte_size,
            info.mtime,
            size,
            index.collection_root,
            settings=index.settings,
        )
    except ImageDecodeError as exc:
        raise HTTPException(404, f"The image cannot be read any more: {exc}") from exc
    return FileResponse(path, media_type="image/jpeg", headers={"Cache-Control": "public, max-age=86400"})


@router.get(
    "/api/images/{image_id}/file",
    response_class=StreamingResponse,
    responses={**ERRORS, **binary("image/*", "The file as it was indexed")},
)
def image_file(index: IndexDep, image_id: int) -> StreamingResponse:
    """The indexed file itself, only while it is the file that was indexed (no link followed
    below the collection's root, same size and sha256), else 404."""
    from imgsearch.indexed_files import open_indexed

    info = found(index, image_id)  # the path comes from the index, never from the request
    if info.path.startswith(("http://", "https://")):
        raise HTTPException(404, "That image is a URL, not a file on this server.")
    try:
        file = open_indexed(info.location, info.sha256, info.byte_size, index.collection_root())
    except ImageDecodeError as exc:
        raise HTTPException(
            404, "That image is not on this server as it was indexed (gone, moved or changed since)."
        ) from exc

    def chunks() -> Iterator[bytes]:
        with file:
            while chunk := file.read(1 << 20):
                yield chunk

    media_type = f"image/{info.format.lower()}" if info.format else "application/octet-stream"
    return StreamingResponse(
        chunks(),
        media_type=media_type,
        headers={"Content-Length": str(info.byte_size), "Cache-Control": "private, max-age=3600"},
    )


@router.delete(
    "/api/images/{image_id}", status_code=204, dependencies=[Depends(require_token)], responses=WRITE_ERRORS
)
def delete_image(index: IndexDep, image_id: int) -> Response:
    """Forget an image and its vectors (the file itself is not touched)."""
    if not (1 <= image_id < 2**63 and index.delete(image_id)):
        raise HTTPException(404, f"No indexed image has id {image_id}.")
    return Response(status_code=204)
