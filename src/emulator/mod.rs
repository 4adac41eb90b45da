//! A local VOD + STS + OSS emulator.
