//! `copy` (from, to): a workspace file under a second name.

use super::{Args, ArgError, Context, GenError, Generator, Output};

/// The `copy` generator.
pub struct Copy;

impl Generator for Copy {
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        args.name("from")?;
        Ok(vec![args.name("to")?.to_owned()])
    }

    fn generate(&self, args: &Args, cx: &mut Context) -> Result<Vec<Output>, GenError> {
        let from = args.name("from")?;
        let file = cx.workspace.get(from).ok_or_else(|| GenError::MissingInput { arg: "from", file: from.to_owned() })?;
        Ok(vec![Output { name: args.name("to")?.to_owned(), file: file.clone() }])
    }

    fn derived(&self) -> bool {
        true
    }
}
