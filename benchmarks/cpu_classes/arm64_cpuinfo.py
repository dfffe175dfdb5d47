"""Prints a /proc/cpuinfo for the CPU that qemu-aarch64 emulates: run it under qemu-aarch64 (prepare_arm64 and
run_emulated do, into ROOT/proc/cpuinfo, which `qemu -L ROOT` shows in place of the host's file).

qemu-aarch64 7.2 shows the guest the host's x86 /proc/cpuinfo: onnxruntime's cpuinfo library finds no ARM
processor there and `import onnxruntime` segfaults. A MIDR or Features line of another core is no better: for a
Neoverse N1 on an emulated Cortex-A72, onnxruntime picks kernels the CPU lacks (SIGILL). So both come from the
emulated CPU: Features from AT_HWCAP/AT_HWCAP2 (names in Linux's order), MIDR_EL1 from an `mrs` instruction,
which qemu emulates as Linux does for user space. Standard library only.
"""

import ctypes
import mmap
import os

HWCAP = (
    "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm jscvt fcma lrcpc dcpop sha3 sm3 "
    "sm4 asimddp sha512 sve asimdfhm dit uscat ilrcpc flagm ssbs sb paca pacg"
).split()
HWCAP2 = (
    "dcpodp sve2 sveaes svepmull svebitperm svesha3 svesm4 flagm2 frint svei8mm svef32mm svef64mm svebf16 i8mm bf16 "
    "dgh rng bti mte ecv afp rpres mte3 sme smei16i64 smef64f64 smei8i32 smef16f32 smeb16f32 smef32f32 smefa64"
).split()


def features() -> str:
    getauxval = ctypes.CDLL(None).getauxval
    getauxval.restype = ctypes.c_ulong
    hwcap, hwcap2 = getauxval(16), getauxval(26)  # AT_HWCAP, AT_HWCAP2
    names = [n for i, n in enumerate(HWCAP) if hwcap >> i & 1] + [n for i, n in enumerate(HWCAP2) if hwcap2 >> i & 1]
    return " ".join(names)


def midr() -> int:
    code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(bytes.fromhex("000038d5" "c0035fd6"))  # mrs x0, midr_el1; ret
    return ctypes.CFUNCTYPE(ctypes.c_uint64)(ctypes.addressof(ctypes.c_char.from_buffer(code)))()


def main() -> None:
    flags, m = features(), midr()
    for i in range(os.cpu_count() or 1):
        print(f"processor\t: {i}\nBogoMIPS\t: 50.00\nFeatures\t: {flags}\nCPU implementer\t: 0x{m >> 24 & 0xFF:02x}")
        print(f"CPU architecture: 8\nCPU variant\t: 0x{m >> 20 & 0xF:x}\nCPU part\t: 0x{m >> 4 & 0xFFF:03x}")
        print(f"CPU revision\t: {m & 0xF}\n")


if __name__ == "__main__":
    main()
