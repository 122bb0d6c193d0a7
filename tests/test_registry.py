"""The registry refuses sets of modules that do not add up."""

from __future__ import annotations

import pytest

from bunbase import Contract, Empty, action, module, triggers
from bunbase.registry import Registry, RegistryError


class Out(Contract):
    ok: bool


def _action(name: str, *trigs):
    @action(name=name, input=Empty, output=Out, triggers=list(trigs))
    def handler(input, ctx):
        return Out(ok=True)

    return handler


def test_duplicate_action_name_is_rejected():
    reg = Registry()
    mod = module("alpha")
    reg.add_module(mod)
    reg.add_action(_action("alpha.thing.do"), mod)
    with pytest.raises(RegistryError, match="duplicate action name"):
        reg.add_action(_action("alpha.thing.do"), mod)


def test_adding_the_same_action_object_twice_is_harmless():
    reg = Registry()
    mod = module("alpha")
    act = _action("alpha.thing.do")
    reg.add_action(act, mod)
    reg.add_action(act, mod)
    assert list(reg.actions) == ["alpha.thing.do"]
    assert act.module is mod


def test_action_outside_its_module_namespace_is_rejected():
    reg = Registry()
    mod = module("alpha")
    reg.add_module(mod)
    for name in ("beta.thing.do", "alphabet.thing.do"):
        with pytest.raises(RegistryError, match=r"must start with 'alpha\.'"):
            reg.add_action(_action(name), mod)
    assert reg.actions == {}


def test_dependency_on_unknown_module_is_rejected():
    reg = Registry()
    reg.add_module(module("alpha"))
    reg.add_module(module("beta", depends_on=["alpha", "ghost"]))
    with pytest.raises(RegistryError, match="unknown module 'ghost'"):
        reg.validate()


def test_known_dependencies_validate():
    reg = Registry()
    reg.add_module(module("alpha"))
    reg.add_module(module("beta", depends_on=["alpha"]))
    reg.validate()


def test_duplicate_module_is_rejected():
    reg = Registry()
    reg.add_module(module("alpha"))
    with pytest.raises(RegistryError, match="defined twice"):
        reg.add_module(module("alpha"))


def test_two_actions_claiming_one_route_are_rejected():
    reg = Registry()
    mod = module("alpha")
    reg.add_module(mod)
    reg.add_action(_action("alpha.a.get", triggers.api("GET", "/things/{id}")), mod)
    reg.add_action(_action("alpha.b.get", triggers.api("GET", "/things/{id}")), mod)
    with pytest.raises(RegistryError, match="claimed by"):
        reg.validate()


def test_action_names_need_a_namespace():
    with pytest.raises(ValueError):
        _action("nodots")


def test_loaded_app_registry_has_the_modules(app):
    reg = app.extensions["bunbase"].registry
    assert {"auth", "support", "testkit"} <= set(reg.modules)
    assert reg.get("support.ticket.create").module is reg.modules["support"]
    assert reg.get("nope.nope") is None
