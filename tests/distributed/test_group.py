"""What a process knows of its place in the group before and without joining it."""
from __future__ import annotations

import pytest

from optimus import distributed
from optimus.errors import ConfigError

LAUNCHER = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "LOCAL_RANK": "1"}


def test_alone_a_process_is_rank_0_of_1(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert (distributed.launched(), distributed.rank(), distributed.world_size(),
            distributed.is_main()) == (False, 0, 1, True)


def test_under_the_launcher_rank_is_known_before_the_group_is_joined(monkeypatch):
    for name, value in {**LAUNCHER, "RANK": "3", "WORLD_SIZE": "4"}.items():
        monkeypatch.setenv(name, value)
    assert (distributed.launched(), distributed.rank(), distributed.world_size(),
            distributed.is_main(), distributed.local_rank()) == (True, 3, 4, False, 1)


def test_a_garbled_launcher_variable_names_itself(monkeypatch):
    for name, value in {**LAUNCHER, "RANK": "first", "WORLD_SIZE": "2"}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match="RANK='first'"):
        distributed.rank()
