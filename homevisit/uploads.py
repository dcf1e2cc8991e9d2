"""The first upload handler: a request body larger than any legitimate upload is refused before it is
read. Nothing in front of gunicorn limits the body size, and Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``
leaves files out, so without this a 2 GB "photo" would be written to a temporary file in full before
the form could say it is too large."""

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler


def request_max_bytes() -> int:
    """The largest multipart request accepted: a visit record with all its photos (each at the
    largest size allowed) or an import file, with the form's fields."""
    files = max(settings.VISIT_ATTACHMENTS_MAX * settings.VISIT_ATTACHMENT_MAX_BYTES, settings.IMPORT_MAX_UPLOAD_BYTES)
    return files + settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class RequestSizeLimitHandler(FileUploadHandler):
    """Answers 400 (templates/400.html says why, in Chinese) for a body past ``request_max_bytes``.
    A file under that limit but over its own (10 MB) is refused by its form, with the rest kept."""

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > request_max_bytes():
            raise RequestDataTooBig("Request body exceeded the upload limit.")

    def receive_data_chunk(self, raw_data, start):
        return raw_data  # the next handler stores it

    def file_complete(self, file_size):
        return None
