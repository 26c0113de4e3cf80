"""Fixtures live in emulator_fixtures (a unique module name, so test modules can import from it)."""

from emulator_fixtures import bot, emulator, other_account_bot

__all__ = ["bot", "emulator", "other_account_bot"]
