//! `jpki register` / `jpki unregister` (filled in by the next commit).

use crate::util::Fail;
use crate::Args;

pub fn run(_args: Args, _add: bool) -> Result<u8, Fail> {
    Err(Fail::usage("register: not implemented yet"))
}
