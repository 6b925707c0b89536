"""The commands of `python -m judge`, one module each: thin doors that turn flags into settings,
call a part and print what it returns."""
