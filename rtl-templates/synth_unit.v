// kaq_unit: one {{ cell }} of a generated design, for hierarchical synthesis. Inputs the design
// holds at zero are tied to zero and outputs nothing in the design reads are left open, so that
// this module synthesizes to what the instance costs inside the flattened design.
`default_nettype none

module kaq_unit (
{%- for p in ports %}
    {{ p.dir }} wire {{ p.range }}{{ p.name }}{% if !loop.last %},{% endif %}
{%- endfor %}
);
    {{ cell }} #(
{%- for p in params %}
        .{{ p.0 }}({{ p.1 }}){% if !loop.last %},{% endif %}
{%- endfor %}
    ) u_unit (
{%- for c in conns %}
        .{{ c.0 }}({{ c.1 }}){% if !loop.last %},{% endif %}
{%- endfor %}
    );
endmodule

`default_nettype wire
