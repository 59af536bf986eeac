# Renders the Open OnDemand app's ERB templates as OnDemand does (ERB with trim mode "-"),
# with stand-ins for what OnDemand gives them: form values as bare methods in
# submit.yml.erb, `context` in template/*.erb, and the session's connection.yml as local
# variables in view.html.erb.
#   ruby ood_render.rb job APP_DIR OUT_DIR FORM.json   submit.yml, before.sh, script.sh
#   ruby ood_render.rb view APP_DIR OUT_DIR CONNECTION.yml   view.html
require "erb"
require "json"
require "ostruct"
require "shellwords"
require "yaml"

mode, app, out = ARGV[0], ARGV[1], ARGV[2]

def render(path, bind)
  ERB.new(File.read(path), trim_mode: "-").result(bind)
end

# Form values as methods, as submit.yml.erb sees them.
class Form
  def initialize(values)
    values.each { |k, v| define_singleton_method(k) { v } }
  end

  def get_binding
    binding
  end
end

case mode
when "job"
  values = JSON.parse(File.read(ARGV[3]))
  form = YAML.safe_load(File.read(File.join(app, "form.yml")))
  missing = form["form"] - values.keys
  abort "ood_render: no value for the form's #{missing.join(', ')}" unless missing.empty?
  unknown = values.keys - form["form"]
  abort "ood_render: #{unknown.join(', ')} not in the form" unless unknown.empty?
  submit = render(File.join(app, "submit.yml.erb"), Form.new(values).get_binding)
  YAML.safe_load(submit) # OnDemand parses it as YAML
  File.write(File.join(out, "submit.yml"), submit)
  context = OpenStruct.new(values)
  %w[before.sh script.sh].each do |name|
    text = render(File.join(app, "template", "#{name}.erb"), binding)
    File.write(File.join(out, name), text)
    File.chmod(0o755, File.join(out, name))
  end
when "view"
  conn = YAML.safe_load(File.read(ARGV[3]))
  bind = binding
  conn.each { |k, v| bind.local_variable_set(k.to_sym, v) }
  File.write(File.join(out, "view.html"), render(File.join(app, "view.html.erb"), bind))
else
  abort "usage: ood_render.rb job|view APP_DIR OUT_DIR FILE"
end
