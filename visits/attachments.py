"""Photos and scans of a visit record: checked by content, re-encoded without location data,
stored outside every URL space."""

import io
import warnings
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
        return "application/pdf", data
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
