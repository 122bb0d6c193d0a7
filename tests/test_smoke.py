def test_create_ticket_over_custom_route(client, tenant_a):
    resp = client.post("/v1/support/tickets", json=tenant_a.ticket(), headers=tenant_a.headers())
    assert resp.status_code == 200, resp.json
    body = resp.json
    assert body["ok"] is True
    assert body["data"]["status"] == "open"
    assert body["data"]["ticketId"].startswith("tkt_")
    assert body["run_id"].startswith("run_")
    assert len(body["trace_id"]) == 32
