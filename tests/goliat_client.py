"""What GOLIAT's real client sends to `/api/gui-screenshots`, written by us from the wire format.

GOLIAT's `HTTPClient.post_gui_screenshots` (requests, so urllib3's encoder) posts one multipart
form: the `machineId` field, then one file part per GUI tab, the field named after the tab with
spaces replaced by `_`, the file `<field>.jpg`, type image/jpeg. Its GUI has the tabs below (it
skips `Progress`); `Disk I/O` goes out as field `Disk_I/O`.
"""

from __future__ import annotations

GOLIAT_TABS = [
    "Timings",
    "Timings Piecharts",
    "Time Remaining",
    "Overall Progress",
    "System Utilization",
    "Disk I/O",
]
GOLIAT_FIELDS = [tab.replace(" ", "_") for tab in GOLIAT_TABS]


def multipart(fields: dict[str, str], files: list[tuple[str, bytes]]) -> tuple[bytes, str]:
    """The body urllib3 builds for requests' `post(data=fields, files=...)` with GOLIAT's file tuples.

    Text fields first, then each file as `<field>.jpg`, image/jpeg; names are quoted with only CR,
    LF and `"` percent-encoded (the HTML5 rule), so `/`, `\\` and `..` go out as they are.
    """
    boundary = "8c1e4fd6a4e34b2c9f0d1a7b3e5c6d90"

    def quoted(name: str) -> str:
        return name.replace("\n", "%0A").replace("\r", "%0D").replace('"', "%22")

    body = b""
    for name, value in fields.items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{quoted(name)}"\r\n\r\n'.encode()
        body += value.encode() + b"\r\n"
    for name, data in files:
        body += (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{quoted(name)}"; filename="{quoted(name)}.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        body += data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"
