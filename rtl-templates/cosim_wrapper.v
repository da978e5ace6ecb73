// {{ name }}: {{ d.top }} with its stage streams as extra outputs (kaq-sim co-simulation).
`default_nettype none
module {{ name }} (
{%- for p in ports %}
    {% if p.output %}output{% else %}input {% endif %} wire {% if p.width > 1 %}[{{ p.width - 1 }}:0] {% endif %}{{ p.name }}{% if !loop.last %},{% endif %}
{%- endfor %}
);
    {{ d.top }} dut (
{%- for p in own %}
        .{{ p }}({{ p }}){% if !loop.last %},{% endif %}
{%- endfor %}
    );
{%- for t in taps %}
    assign {{ t.port }} = dut.{{ t.wire }};
{%- endfor %}
endmodule
`default_nettype wire
