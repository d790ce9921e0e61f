"""Request bodies streamed into an :class:`~iqarena.challenge.storage.Incoming` file, refused as soon as they pass
the cap: a raw zip body, or a multipart form (its file part streamed, its small fields kept)."""

from __future__ import annotations

from python_multipart.multipart import MultipartParser, parse_options_header

from .auth import Refused
from .storage import Incoming, TooLarge

FIELD_CAP = 4096        # bytes of one non-file form field
FORM_SLACK = 64 << 10   # multipart framing and fields on top of the file's cap


async def receive_upload(request, incoming: Incoming) -> tuple[str | None, dict[str, str]]:
    """(file name, form fields). TooLarge when the body passes the cap (checked on Content-Length first,
    then while streaming, so a lying or absent length is caught too)."""
    cap = incoming.cap + FORM_SLACK
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > cap):
        raise TooLarge(incoming.cap)
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        async for chunk in request.stream():
            incoming.write(chunk)
        return request.headers.get("x-filename"), {}
    boundary = options.get(b"boundary")
    if not boundary:
        raise Refused("multipart body without a boundary.")
    state = {"headers": {}, "field": b"", "value": b"", "name": None, "filename": None, "buf": bytearray(),
             "is_file": False, "filename_seen": None}
    fields: dict[str, str] = {}

    def on_part_begin():
        state.update(headers={}, name=None, filename=None, buf=bytearray(), is_file=False)

    def on_header_field(data, start, end):
        state["field"] += data[start:end]

    def on_header_value(data, start, end):
        state["value"] += data[start:end]

    def on_header_end():
        state["headers"][state["field"].decode("latin-1").lower()] = state["value"]
        state["field"], state["value"] = b"", b""

    def on_headers_finished():
        _, disp = parse_options_header(state["headers"].get("content-disposition", b""))
        state["name"] = disp.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in disp:
            state["is_file"] = state["name"] == "file"
            state["filename"] = disp[b"filename"].decode("utf-8", "replace")
            if state["is_file"]:
                state["filename_seen"] = state["filename"]

    def on_part_data(data, start, end):
        if state["is_file"]:
            incoming.write(data[start:end])
        elif state["filename"] is None:
            if len(state["buf"]) + (end - start) > FIELD_CAP:
                raise Refused("a form field is too long.", 413)
            state["buf"] += data[start:end]

    def on_part_end():
        if not state["is_file"] and state["filename"] is None and state["name"]:
            fields[state["name"]] = bytes(state["buf"]).decode("utf-8", "replace")

    parser = MultipartParser(boundary, {"on_part_begin": on_part_begin, "on_header_field": on_header_field,
                                        "on_header_value": on_header_value, "on_header_end": on_header_end,
                                        "on_headers_finished": on_headers_finished, "on_part_data": on_part_data,
                                        "on_part_end": on_part_end})
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise TooLarge(incoming.cap)
        parser.write(chunk)
    parser.finalize()
    return state["filename_seen"], fields
