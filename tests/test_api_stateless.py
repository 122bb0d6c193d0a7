"""The JSON API under /v1/ is stateless: no cookie session is opened, read or set for it,
while Studio keeps its signed-cookie session."""

from __future__ import annotations

import pytest
from flask import session

from tests.helpers import assert_success
from tests.test_api_keys import studio_login


def test_an_api_call_with_a_studio_cookie_neither_reads_nor_sets_a_session(app, tenant_a):
    client = app.test_client()
    studio_login(client, tenant_a)  # the browser now holds Studio's session cookie
    resp = client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=tenant_a.headers())
    assert_success(resp)
    assert "Set-Cookie" not in resp.headers and "Cookie" not in resp.headers.get("Vary", "")
    # and the cookie alone is no credential for the API
    anonymous = client.post("/v1/support/tickets", json=tenant_a.ticket(),
                            headers={"X-Tenant-Id": tenant_a.id})
    assert anonymous.status_code == 401
    assert client.get("/studio/").status_code == 200  # Studio's session is untouched


def test_writing_to_the_session_in_an_api_request_is_a_clear_error(app):
    from bunbase.platform import ApiNullSession

    with app.test_request_context("/v1/system/health"):
        app.preprocess_request()
        assert isinstance(session._get_current_object(), ApiNullSession)
        assert dict(session) == {}
        with pytest.raises(RuntimeError, match="stateless"):
            session["user"] = "x"
    with app.test_request_context("/studio/login"):
        assert not isinstance(session._get_current_object(), ApiNullSession)
