"""The C inference runtime, the plan compiler, firmware builds, and the backends that run firmware
(QEMU for emulated boards, pyOCD + pyserial for real ones)."""
