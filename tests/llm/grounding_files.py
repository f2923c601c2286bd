"""Files for the grounding tests: a small real PDF written by hand (pypdf reads its text),
and the upload and wait helpers."""

from __future__ import annotations

import time

from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from chat.models import Attachment
from llm.indexing import index_queue


def pdf_bytes(lines: list[str]) -> bytes:
    """A one-page PDF whose text is ``lines``, one per line (Helvetica), with a correct
    cross-reference table."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    stream = "BT /F1 12 Tf 72 720 Td 14 TL\n"
    stream += "".join(f"({escape(line)}) Tj T*\n" for line in lines) + "ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] "
        "/Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Length {len(stream.encode('latin-1'))} >>\nstream\n{stream}\nendstream",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\n".encode()
    out += f"startxref\n{xref_at}\n%%EOF\n".encode()
    return out


# Starts as a PDF (so it is typed as one from its bytes) and is nothing after that.
BROKEN_PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 9 0 R\nthis is not a pdf body" * 4


def upload(client, message_id, name: str, data: bytes):
    url = reverse("message-attachments", kwargs={"message_id": message_id})
    file = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(url, {"file": file}, format="multipart")


def indexed(attachment_id, within: float = 20.0) -> Attachment:
    """The attachment once this worker's indexing queue is idle."""
    assert index_queue.wait_idle(within), "indexing did not finish"
    return Attachment.objects.get(pk=attachment_id)


def wait_status(attachment_id, status: str, within: float = 20.0) -> Attachment:
    deadline = time.monotonic() + within
    while True:
        attachment = Attachment.objects.get(pk=attachment_id)
        if attachment.index_status == status:
            return attachment
        assert time.monotonic() < deadline, f"still {attachment.index_status!r}"
        time.sleep(0.02)
