//! `copy` (from, to): a workspace file under a second name.

use super::{Arg, Args, Context, GenError, Generator, Output};

/// The `copy` generator.
pub(crate) struct Copy;

const ARGS: &[Arg] = &[
    Arg::input("from", "the workspace file to copy"),
    // Private whatever it copies: the file keeps the source's mode.
    Arg::private("to", "the second name"),
];

impl Generator for Copy {
    fn doc(&self) -> &'static str {
        "a workspace file under a second name"
    }

    fn args(&self) -> &'static [Arg] {
        ARGS
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let from = args.name("from")?;
        let file = cx
            .workspace
            .get(from)
            .ok_or_else(|| GenError::MissingInput {
                arg: "from",
                file: from.to_owned(),
            })?;
        Ok(vec![Output {
            name: args.name("to")?.to_owned(),
            file: file.clone(),
        }])
    }

    fn derived(&self) -> bool {
        true
    }
}
