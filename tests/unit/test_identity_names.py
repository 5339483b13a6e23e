"""The acting person's name as the CLI takes it: a blank or invisible name is refused."""

from __future__ import annotations

import os
import pwd

import pytest

from mlops_platform.trust.identity import IdentityError, identity_details, resolve_actor


@pytest.mark.parametrize(("typed", "message"), [("", "is blank"), ("  ", "is blank")])
def test_a_blank_actor_is_refused_not_replaced_by_the_os_user(typed: str, message: str) -> None:
    with pytest.raises(IdentityError, match=message):
        resolve_actor("local", typed)


@pytest.mark.parametrize("typed", ["car\u200bol", "carol\x00", "\u202ecarol"])
def test_an_actor_with_invisible_characters_is_refused(typed: str) -> None:
    with pytest.raises(IdentityError, match="control or invisible characters"):
        resolve_actor("local", typed)


def test_a_typed_actor_is_asserted_and_recorded_with_the_os_user() -> None:
    actor = resolve_actor("local", " carol ")
    assert (actor.name, actor.source) == ("carol", "asserted")
    recorded = identity_details(actor.name, actor.source, {"run_url": None})
    assert recorded == {
        "name": "carol",
        "source": "asserted",
        "os_user": pwd.getpwuid(os.geteuid()).pw_name,
        "evidence": {"run_url": None},
    }


def test_the_recorded_os_user_is_the_process_account_not_what_logname_or_user_say(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    account = pwd.getpwuid(os.geteuid()).pw_name
    for variable in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        monkeypatch.setenv(variable, "carol\nnot-" + account)

    actor = resolve_actor("local", "bob")

    assert actor.os_user == account
    assert identity_details(actor.name, actor.source, {})["os_user"] == account
