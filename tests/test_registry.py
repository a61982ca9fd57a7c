import pytest

from medrobust.errors import ConfigError, UnknownNameError
from medrobust.registry import Entry, Registry


def make() -> Registry[object]:
    reg: Registry[object] = Registry("model")

    @reg.register("small_cnn", help="small", task="any")
    def small(*, width: int = 4) -> object:
        return ("small", width)

    @reg.register("resnet18")
    def resnet() -> object:
        """A ResNet."""
        return "resnet"

    return reg


def test_register_create_names_meta() -> None:
    reg = make()
    assert reg.names() == ["resnet18", "small_cnn"]
    assert reg.create("small_cnn", width=8) == ("small", 8)
    assert reg.get("small_cnn").meta == {"task": "any"}
    assert reg.get("resnet18").help == "A ResNet."
    assert "small_cnn" in reg and len(reg) == 2


def test_unknown_name_suggests_close_match() -> None:
    with pytest.raises(UnknownNameError) as e:
        make().create("smal_cnn")
    msg = str(e.value)
    assert "did you mean 'small_cnn'?" in msg and "\n" not in msg


def test_unknown_option_suggests() -> None:
    with pytest.raises(ConfigError, match="did you mean 'width'"):
        make().create("small_cnn", widht=3)


def test_duplicate_registration_fails() -> None:
    reg = make()
    with pytest.raises(ValueError):
        reg.register("small_cnn")(lambda: None)


def test_family_resolves_prefixed_names_and_is_listed_once() -> None:
    reg = make()

    def resolve(member: str) -> Entry[object]:
        if member != "Net":
            raise UnknownNameError(f"no {member!r}")
        return Entry(f"lib:{member}", lambda *, depth=1: ("lib", depth))

    reg.register_family("lib", resolve, help="any lib network")
    assert reg.create("lib:Net", depth=2) == ("lib", 2)
    with pytest.raises(UnknownNameError, match="no 'Other'"):
        reg.get("lib:Other")
    with pytest.raises(ConfigError, match="unknown option 'width'"):
        reg.create("lib:Net", width=2)
    assert [e.name for e in reg] == ["resnet18", "small_cnn", "lib:<Name>"]
    assert reg.names()[-1] == "lib:<Name>"
    with pytest.raises(UnknownNameError, match="did you mean 'lib:<Name>'"):
        reg.get("lib")
    with pytest.raises(ValueError, match="already registered"):
        reg.register_family("lib", resolve, help="again")
