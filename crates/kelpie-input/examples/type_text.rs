//! Types its second argument on the display given first: `type_text :0 "Grüße €"`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(display), Some(text)) = (args.next(), args.next()) else {
        return Err("usage: type_text DISPLAY TEXT".into());
    };
    let mut injector = kelpie_input::Injector::open(&display)?;
    injector.text(&text)?;
    injector.release_all()?;
    injector.sync()?;
    Ok(())
}
