//! `text` (name, text): a file with the given text.

use super::{Args, ArgError, Context, GenError, Generator, Output};

/// The `text` generator.
pub struct Text;

impl Generator for Text {
    fn outputs(&self, args: &Args) -> Result<Vec<String>, ArgError> {
        args.str("text")?;
        Ok(vec![args.name("name")?.to_owned()])
    }

    fn generate(&self, args: &Args, _cx: &mut Context) -> Result<Vec<Output>, GenError> {
        Ok(vec![Output::private(args.name("name")?, args.str("text")?)])
    }

    fn derived(&self) -> bool {
        true
    }
}
