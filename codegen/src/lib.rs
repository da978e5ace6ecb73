//! kaq-codegen: lowers the kaq IR to Verilog through askama templates. It depends on the IR of
//! kaq-model only; the generator itself arrives with the IR (see the project issues).
