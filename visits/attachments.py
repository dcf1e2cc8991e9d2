"""Photos and scans of a visit record: checked by content, re-encoded without location data,
stored outside every URL space."""

import io
import re
import warnings
import zlib
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from PIL import Image, ImageOps, UnidentifiedImageError
from pillow_heif import register_heif_opener

from schools.models import AuditEvent, User
from schools.services import audit_event_record
from visits.models import Attachment, Visit

register_heif_opener()

# A phone photo is 12–50 megapixels; far more is a decompression bomb, not a photo.
MAX_PIXELS = 80_000_000
Image.MAX_IMAGE_PIXELS = MAX_PIXELS
# Stored images are scaled down to this on their long side: legible, and a tenth of the size.
MAX_SIDE = 2560
PDF_MAGIC = b"%PDF-"
PHOTO_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n")  # JPEG, PNG
# What a scan never carries: scripts, actions that start a program or send data, embedded files,
# and encryption (which would hide the rest from this check). A PDF is stored as it is, not
# re-encoded, so one that names any of these is refused.
PDF_ACTIVE_NAMES = {
    b"/JavaScript",
    b"/JS",
    b"/Launch",
    b"/SubmitForm",
    b"/ImportData",
    b"/EmbeddedFile",
    b"/EmbeddedFiles",
    b"/RichMedia",
    b"/XFA",
    b"/Encrypt",
}
_PDF_NAME = re.compile(rb"/[^\s/<>\[\]()%{}]*")
_PDF_NAME_ESCAPE = re.compile(rb"#([0-9A-Fa-f]{2})")
_PDF_STREAM = re.compile(rb"(?<!end)stream\r?\n")
# Dictionaries may also sit in compressed object streams; these bound the work of reading them.
PDF_OBJECT_STREAMS_MAX = 100
_PDF_FILTERS = {
    b"/FlateDecode",
    b"/Fl",
    b"/LZWDecode",
    b"/LZW",
    b"/ASCIIHexDecode",
    b"/AHx",
    b"/ASCII85Decode",
    b"/A85",
    b"/RunLengthDecode",
    b"/RL",
    b"/Crypt",
}
PDF_OBJECT_STREAM_MAX_BYTES = 5 * 1024 * 1024


@dataclass(frozen=True)
class PreparedFile:
    """An upload that passed the checks, re-encoded and ready to store."""

    name: str
    content_type: str
    payload: bytes


def attachment_prepare(upload: UploadedFile) -> PreparedFile:
    """Check a file by what it contains (JPEG, PNG, HEIC or PDF, at most 10 MB) and re-encode images
    so that no EXIF data, GPS location included, survives. Raises ValidationError saying why not."""
    limit = settings.VISIT_ATTACHMENT_MAX_BYTES
    if upload.size > limit:
        raise ValidationError(
            f"「{upload.name}」有 {upload.size / 1024 / 1024:.1f} MB，超过 {limit // (1024 * 1024)} MB 的上限。"
        )
    content_type, payload = _normalise(upload.read(), upload.name)
    return PreparedFile(name=upload.name[:200], content_type=content_type, payload=payload)


def attachment_add(*, visit: Visit, prepared: PreparedFile, acting_user: User) -> Attachment:
    """Store a prepared file with the record, privately (outside the static and media URLs)."""
    with transaction.atomic():
        Visit.objects.select_for_update().filter(pk=visit.pk).first()  # serialise concurrent uploads
        if visit.attachments.count() >= settings.VISIT_ATTACHMENTS_MAX:
            raise ValidationError(f"每条家访记录最多上传 {settings.VISIT_ATTACHMENTS_MAX} 个附件。")
        attachment = Attachment(
            visit=visit,
            original_name=prepared.name,
            content_type=prepared.content_type,
            size=len(prepared.payload),
            uploaded_by=acting_user,
        )
        attachment.full_clean()
        attachment.save()
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="visits.Attachment",
            object_id=str(attachment.public_id),
            detail={"visit": str(visit.public_id), "added": attachment.original_name},
        )
        # Written last, so that a failure before this point leaves no file behind.
        attachment.path.parent.mkdir(parents=True, exist_ok=True)
        attachment.path.write_bytes(prepared.payload)
    return attachment


def attachment_delete(*, attachment: Attachment, acting_user: User) -> None:
    with transaction.atomic():
        path = attachment.path
        audit_event_record(
            action=AuditEvent.Action.CHANGE,
            user=acting_user,
            object_type="visits.Attachment",
            object_id=str(attachment.public_id),
            detail={"visit": str(attachment.visit.public_id), "deleted": attachment.original_name},
        )
        attachment.delete()
        transaction.on_commit(lambda: path.unlink(missing_ok=True))


def _normalise(data: bytes, name: str) -> tuple[str, bytes]:
    if data.startswith(PDF_MAGIC):
        if b"%%EOF" not in data[-2048:]:
            raise ValidationError(f"「{name}」不是完整的 PDF 文件，可能已损坏。")
        if _pdf_active_content(data):
            raise ValidationError(
                f"「{name}」含有脚本、附件或加密等内容，不是普通的扫描件，不能上传。"
                "请用扫描 App 重新导出 PDF，或改拍照片。"
            )
        return "application/pdf", data
    kind = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            kind = image.format
            if kind not in {"JPEG", "PNG", "HEIF"}:
                raise ValidationError(f"「{name}」是 {kind} 格式；只能上传 JPG、PNG、HEIC 照片或 PDF 扫描件。")
            image.load()
    except ValidationError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ValidationError(f"「{name}」的像素过多，不像是一张照片。") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        if kind is not None or data.startswith(PHOTO_MAGIC):  # a photo's beginning, not all of it
            raise ValidationError(f"「{name}」不完整或已损坏，无法打开。请重新拍摄，或从相册重新选择。") from None
        raise ValidationError(f"「{name}」不是照片或 PDF 文件（只能上传 JPG、PNG、HEIC 或 PDF）。") from None
    # Turn the picture upright before the orientation tag is dropped with the rest of EXIF.
    image = ImageOps.exif_transpose(image)
    image.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    if kind == "PNG":
        image.save(out, format="PNG", optimize=True)
        return "image/png", out.getvalue()
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    image.save(out, format="JPEG", quality=85, optimize=True)  # no exif= argument: nothing carried over
    return "image/jpeg", out.getvalue()


def _pdf_names(data: bytes, start: int, end: int) -> set[bytes]:
    """The PDF names in ``data[start:end]``, #xx escapes decoded (/J#61vaScript is /JavaScript)."""
    return {
        _PDF_NAME_ESCAPE.sub(lambda m: bytes.fromhex(m.group(1).decode()), name)
        for name in _PDF_NAME.findall(data, start, end)
    }


def _pdf_active_content(data: bytes) -> bool:
    """Whether the PDF names active content in a dictionary: in its body, or in a compressed object
    stream. Other streams (pictures, page text) are skipped, as their bytes may spell anything.
    What cannot be checked within the bounds counts as active."""
    view = memoryview(data)
    position = streams = 0
    while True:
        match = _PDF_STREAM.search(data, position)
        if _pdf_names(data, position, match.start() if match else len(data)) & PDF_ACTIVE_NAMES:
            return True
        if match is None:
            return False
        end = data.find(b"endstream", match.end())
        if end < 0:
            return True
        names = _pdf_names(data, max(position, match.start() - 512), match.start())  # the stream's dictionary
        if b"/ObjStm" in names and names & _PDF_FILTERS:  # an uncompressed one was read with the body
            streams += 1
            if streams > PDF_OBJECT_STREAMS_MAX or not names & {b"/FlateDecode", b"/Fl"}:
                return True
            inflater = zlib.decompressobj()
            try:
                inflated = inflater.decompress(view[match.end() : end], PDF_OBJECT_STREAM_MAX_BYTES)
            except zlib.error:
                return True
            if inflater.unconsumed_tail or _pdf_names(inflated, 0, len(inflated)) & PDF_ACTIVE_NAMES:
                return True
        position = end + len(b"endstream")
