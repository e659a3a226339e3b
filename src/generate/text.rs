//! `text` (name, text): a file with the given text.

use super::{Arg, Args, Context, GenError, Generator, Output, Type};

/// The `text` generator.
pub(crate) struct Text;

const ARGS: &[Arg] = &[
    Arg::private("name", "the file"),
    Arg::value("text", Type::Str, "its content"),
];

impl Generator for Text {
    fn doc(&self) -> &'static str {
        "a file with the given text"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn generate(&self, args: &Args, _cx: &mut Context) -> Result<Vec<Output>, GenError> {
        Ok(vec![Output::private(args.name("name")?, args.str("text")?)])
    }

    fn derived(&self) -> bool {
        true
    }
}
