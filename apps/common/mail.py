"""An e-mail backend for the demo and local runs: every message is saved as a .eml file and summarised in one
line of ``$SLIPWAY_DATA_DIR/mail/outbox.log`` (``EMAIL_URL=summarymail://``; ``rundemo`` prints those lines)."""

import threading
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from django.core.mail.backends.base import BaseEmailBackend

_lock = threading.Lock()


def mail_dir() -> Path:
    return Path(settings.DATA_DIR) / "mail"


def outbox_path() -> Path:
    return mail_dir() / "outbox.log"


class SummaryFileBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        folder = mail_dir()
        folder.mkdir(parents=True, exist_ok=True)
        sent = 0
        for message in email_messages or []:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
            path = folder / f"{stamp}.eml"
            path.write_bytes(message.message().as_bytes())
            recipients = ", ".join(message.recipients())
            line = f'e-mail "{message.subject}" to {recipients} — saved as {path}\n'
            with _lock, outbox_path().open("a", encoding="utf-8") as out:
                out.write(line)
            sent += 1
        return sent
