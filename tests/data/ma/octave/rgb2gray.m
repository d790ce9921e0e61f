function g = rgb2gray(rgb)
% MATLAB's rgb2gray (its exact weights; uint8 in -> rounded uint8 out). Octave's uses 6-digit weights.
if ndims(rgb) ~= 3, g = rgb; return; end
x = double(rgb);
g = (x(:,:,1)*0.298936021293775 + x(:,:,2)*0.587043074451121) + x(:,:,3)*0.114020904255103;
if isa(rgb, 'uint8'), g = uint8(g); end
end
