"""``gateway.sunspec.maps`` re-exports the three map modules (layout, model 802, 124/702)."""

from __future__ import annotations

from gateway.sunspec import layout, maps, model802, storage_control


def test_every_name_is_the_object_of_its_home_module() -> None:
    homes = (layout, model802, storage_control)
    for name in maps.__all__:
        owners = [m for m in homes if name in m.__all__]
        assert len(owners) == 1, name
        assert getattr(maps, name) is getattr(owners[0], name), name
