"""The embedded servers' libraries log to a file under the data directory, not the terminal."""

from __future__ import annotations

import logging
import uuid

from services.platform.embedded import log_to_file


def test_a_librarys_records_go_to_its_file_once(tmp_path, capsys):
    name = f"library_{uuid.uuid4().hex}"
    path = tmp_path / "library.log"
    log_to_file(name, path)
    log_to_file(name, path)  # a second start in the same process adds no second handler
    logging.getLogger(name).info("initdb said a page of things")
    for handler in logging.getLogger(name).handlers:
        handler.flush()
    assert path.read_text().count("initdb said a page of things") == 1
    assert "initdb" not in capsys.readouterr().err
