"""kombu's filesystem transport, with messages written atomically.

kombu writes a message file in place (``open`` + write), and a consumer polling the folder can
move and read it before the write has finished: it reads an empty or cut file, and the message
is lost (a ``JSONDecodeError`` in the worker). Here a message is written under a name the
consumer ignores and renamed into place, so a consumer sees whole messages or none.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: str, payload: Any, **kwargs: Any) -> None:
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".{name}.part")  # not "<queue>.msg"
        with open(partial, "wb") as f:
            f.write(str_to_bytes(dumps(payload)))
        os.replace(partial, final)


class Transport(filesystem.Transport):
    Channel = Channel
