"""TAK interoperability: ATAK, WinTAK and iTAK devices over Cursor-on-Target."""
